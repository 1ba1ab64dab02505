{#- The active topology: which host plays which role.
    Replace the include with your own hosts (same schema as pillar/layouts/*.sls,
    keys under `hosts` are minion ids). The lab shadows this file with its own. #}
{% include 'layouts/three-tier.sls' %}
