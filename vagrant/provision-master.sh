#!/bin/sh
# The master machine (see the Vagrantfile): its configuration and the
# topology's minion keys from /srv/vagrant (pre-seeded: no key is accepted
# by hand, and never automatically), then the ordered deploy, printing the
# changed and failed states of every host (one line per host, which the
# tests parse).
#   provision-master.sh MINION_ID...   (every host of the topology)
set -eu
bundle=/srv/vagrant
restart=no

if ! cmp -s "$bundle/django-stack.conf" /etc/salt/master.d/django-stack.conf; then
    install -D -m 0644 "$bundle/django-stack.conf" /etc/salt/master.d/django-stack.conf
    restart=yes
fi
keys=/etc/salt/pki/master/minions
mkdir -p "$keys"
for id in "$@"; do
    cmp -s "$bundle/minions/$id" "$keys/$id" || install -m 0644 "$bundle/minions/$id" "$keys/$id"
done
# Only the topology's hosts are this master's minions.
for key in "$keys"/*; do
    [ -e "$key" ] || continue
    case " $* " in *" ${key##*/} "*) ;; *) rm -f "$key"; echo "removed the key of ${key##*/}" ;; esac
done
systemctl enable --quiet salt-master
if [ "$restart" = yes ]; then systemctl restart salt-master; else systemctl start salt-master; fi

# The hosts come up alongside (vagrant up runs machines in parallel): wait
# for each, bounded in time. A generous -t costs nothing once minions are up
# (salt returns as soon as all answered) and lets VMs under software
# emulation answer at all (the master alone takes seconds to accept a job).
want=$#
targets=$(echo "$@" | tr ' ' ',')
deadline=$(( $(date +%s) + 1200 ))
while :; do
    up=$(salt -t 60 -L "$targets" test.ping --out=txt 2>/dev/null | grep -c ': True$' || true)
    [ "$up" -eq "$want" ] && break
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "only $up of $want minions answer test.ping after 20 minutes" >&2
        exit 1
    fi
    sleep 5
done
echo "$want minions answer; running the ordered deploy"

log=/var/log/django-stack-deploy
rc=0
salt-run --out=json state.orchestrate orchestrate.deploy saltenv=stack pillarenv=stack \
    >"$log.json" 2>"$log.err" || rc=$?
# The same parser as the lab's (stacklab/saltctl.py), from the served tree.
PYTHONPATH=/srv/django-stack PYTHONDONTWRITEBYTECODE=1 python3 -m stacklab.vagrant report "$log.json" \
    --returncode "$rc" --stderr-file "$log.err" "$@"
