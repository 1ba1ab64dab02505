# The lab's stand-in for a site's own states (the master's base file root,
# /srv/lab-base): a top file of its own, in env base, that targets only the
# minion outside the stack's topology. The stack lives in env stack and must
# leave this minion's highstate exactly as this file makes it.
base:
  outsider:
    - match: list
    - outsider
