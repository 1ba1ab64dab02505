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
# for each, bounded.
want=$#
targets=$(echo "$@" | tr ' ' ',')
i=0
while :; do
    up=$(salt -t 5 -L "$targets" test.ping --out=txt 2>/dev/null | grep -c ': True$' || true)
    [ "$up" -eq "$want" ] && break
    i=$((i + 1))
    if [ "$i" -ge 60 ]; then
        echo "only $up of $want minions answer test.ping after 5 minutes" >&2
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
