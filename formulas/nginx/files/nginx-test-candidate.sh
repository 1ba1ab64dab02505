#!/bin/sh
# Managed by Salt (nginx formula).
# Tests a candidate nginx config file before Salt puts it in place, so a
# broken file never reaches /etc/nginx (Salt's check_cmd appends the name
# of the temporary file holding the new content).
#   usage: nginx-test-candidate PATH-UNDER-/etc/nginx CANDIDATE
# /etc/nginx is copied, the candidate dropped into the copy and `nginx -t`
# run on it: nginx.conf includes relative paths, which nginx resolves
# against the directory of the file given with -c.
# If the live config is already broken (e.g. two pieces hand-edited), the
# candidate is tested without the other pieces this formula manages, since
# their own states are about to repair them.
set -eu
conf=/etc/nginx
rel=$1
candidate=$2
marker='Managed by Salt (nginx formula)'
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
cp -a "$conf/." "$work/"
mkdir -p "$(dirname "$work/$rel")"
cp "$candidate" "$work/$rel"
if nginx -q -t -c "$work/nginx.conf"; then
  exit 0
fi
if nginx -q -t -c "$conf/nginx.conf" 2>/dev/null; then
  exit 1
fi
echo "live config already broken: testing $rel without the other managed pieces" >&2
grep -rlF "$marker" "$work" | while read -r piece; do
  case "$piece" in
    "$work/$rel" | "$work/nginx.conf") ;;
    *) rm -f "$piece" ;;
  esac
done
nginx -q -t -c "$work/nginx.conf"
