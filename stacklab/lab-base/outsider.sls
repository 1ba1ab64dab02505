# The one state the outsider minion gets from its site (stacklab.site.OUTSIDER_STATE_IDS).
outsider-was-here:
  file.managed:
    - name: /etc/outsider-was-here
    - contents: "managed by the site's own base states, not by the stack"
    - mode: "0644"
