{#- Roles this host no longer holds (moved elsewhere in the topology) leave
    it: each role's retire states from the registry (pillar stack:retire).
    Their formulas never remove data. -#}
{%- set retire = salt['pillar.get']('stack:retire', []) %}
{%- if retire %}

include:
{%-   for sls in retire %}
  - {{ sls }}
{%-   endfor %}
{%- endif %}

{#- Also keeps the orchestrate step from returning nothing on a host that holds every role. #}
stack-roles-not-held:
  test.succeed_without_changes:
    - name: "retired here if present: {{ retire | join(', ') or 'nothing' }}"
