#!/bin/sh
# A topology host (see the Vagrantfile): its bootstrap Salt configuration,
# the master's address and its minion id, nothing else (the stack's own state
# takes over the minion's configuration at the first deploy), and the
# keypair the master was pre-seeded with. The minion is restarted only when
# one of them changed, so a second `vagrant provision` changes nothing.
#   provision-minion.sh MINION_ID MASTER_ADDRESS KEY_UPLOAD_PREFIX
set -eu
id=$1 master=$2 upload=$3
changed=no

# install_if_changed SRC DEST MODE: DEST becomes SRC's content.
install_if_changed() {
    if ! cmp -s "$1" "$2"; then
        install -D -m "$3" -o root -g root "$1" "$2"
        echo "$2: written"
        changed=yes
    fi
}

conf=$(mktemp)
printf 'master: %s\nid: %s\n' "$master" "$id" >"$conf"
install_if_changed "$conf" /etc/salt/minion.d/vagrant.conf 0644
rm -f "$conf"
install_if_changed "$upload.pem" /etc/salt/pki/minion/minion.pem 0400
install_if_changed "$upload.pub" /etc/salt/pki/minion/minion.pub 0644
rm -f "$upload.pem" "$upload.pub"

systemctl enable --quiet salt-minion
if [ "$changed" = yes ]; then
    systemctl restart salt-minion
    echo "salt-minion (re)started: master $master, id $id"
else
    systemctl start salt-minion
    echo "salt-minion configuration unchanged: master $master, id $id"
fi
