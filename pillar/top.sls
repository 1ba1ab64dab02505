base:
  '*':
    - stack
    # Site-local overrides merged over the stack (the lab writes one); optional.
    - overrides
    - ignore_missing: True
