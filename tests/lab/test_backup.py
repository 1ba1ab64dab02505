"""Backups on the replicated layout: backup1 is the pgBackRest repository,
the three Patroni members archive to it through whichever leads; it also
keeps snapshots of web1's uploads.

A point-in-time drill, a backup taken under writes and restored, and the
repository host down for a while: the site keeps writing and the WAL
archive has no gap once it is back."""
import json
import re
import time
import uuid

import pytest

import stack_checks as checks
from stacklab.saltctl import STACK_ENV

pytestmark = pytest.mark.layout("replicated")

PGBACKREST = checks.PGBACKREST
MEDIA_BACKUP = checks.MEDIA_BACKUP
STANZA = checks.BACKUP_STANZA


@pytest.fixture(scope="module")
def topology():
    return checks.load_layout("replicated")


class TestBackup:

    def test_every_member_archives_to_the_repository_and_the_first_backup_exists(self, lab, topology, say):
        checks.wait_first_backup(lab, topology)
        checks.check_archiving(lab, topology)
        leader = checks.leader(lab, topology)
        for host in checks.hosts_with(topology, "database"):
            command = checks.sql_on(lab, host, "SHOW archive_command", "postgres")
            assert command == f"pgbackrest --stanza={STANZA} archive-push %p", (host, command)
        archiver = checks.sql_on(lab, leader, "SELECT archived_count, failed_count FROM pg_stat_archiver", "postgres")
        say(f"leader {leader}: archived, failed segments: {archiver}; backups: "
            f"{[(b['label'], b['type']) for b in checks.backups(lab, topology)]}")
        assert int(archiver.split("|")[0]) > 0
        # The repository host's TLS key is its own and readable by postgres only.
        key = lab.host(checks.backup_host(topology)).file(f"{PGBACKREST['tls_dir']}/host.key")
        assert (key.user, key.mode) == ("postgres", 0o600)

    def test_point_in_time_restore_brings_back_what_was_there_at_that_moment(self, lab, topology, say):
        checks.wait_first_backup(lab, topology)
        leader = checks.leader(lab, topology)
        checks.sql_on(lab, leader, "DROP TABLE IF EXISTS pitr_drill; CREATE TABLE pitr_drill (batch text)")
        checks.sql_on(lab, leader, "INSERT INTO pitr_drill SELECT 'A' FROM generate_series(1, 100)")
        time.sleep(1)
        target = checks.sql_on(lab, leader, "SELECT clock_timestamp()")
        time.sleep(1)
        checks.sql_on(lab, leader, "INSERT INTO pitr_drill SELECT 'B' FROM generate_series(1, 100)")
        checks.sql_on(lab, leader, "DELETE FROM pitr_drill")
        deleted = checks.sql_on(lab, leader, "SELECT clock_timestamp()")
        checks.check_archiving(lab, topology)
        # Restored on a replica, beside its live cluster.
        host = next(h for h in checks.hosts_with(topology, "database") if h != leader)
        started = time.monotonic()
        checks.restore_scratch(lab, host, "pitr", f"--time '{target}'")
        took = time.monotonic() - started
        try:
            got = checks.scratch_sql(lab, host, "SELECT batch, count(*) FROM pitr_drill GROUP BY batch ORDER BY batch"
                                     ).split()
        finally:
            checks.drop_scratch(lab, host, "pitr")
        say(f"point in time drill: rows A written, target time {target}, rows B written, all deleted at "
            f"{deleted}; restored to the target on {host} in {took:.1f} s: {got}")
        assert got == ["A|100"], got

    def test_a_backup_taken_under_writes_restores_every_row_acknowledged_before_its_end(self, lab, topology, say):
        checks.wait_first_backup(lab, topology)
        address = lab.address(checks.hosts_with(topology, "loadbalancer")[0])
        with checks.Traffic(address, reads=False) as traffic:
            time.sleep(3)
            checks.pgbackrest(lab, checks.backup_host(topology), "--type=diff backup")
            time.sleep(3)
        backup = checks.backups(lab, topology)[-1]
        # pgBackRest records whole seconds: rows acknowledged a second before
        # the recorded stop were certainly before the backup's end point.
        end = backup["timestamp"]["stop"] - 1
        before_end = [row for row, at in zip(traffic.acked, traffic.acked_at) if at < end]
        host = checks.leader(lab, topology)
        checks.restore_scratch(lab, host, "underwrites", f"--set {backup['label']}")
        try:
            present = checks.scratch_sql(lab, host, "SELECT count(*) FROM visits_visit WHERE id = "
                                         f"ANY(ARRAY[{','.join(map(str, before_end or [0]))}]::bigint[])")
        finally:
            checks.drop_scratch(lab, host, "underwrites")
        lost = len(before_end) - int(present)
        say(f"backup {backup['label']} under writes: sent {traffic.sent}, failed {traffic.failed}, "
            f"acknowledged {len(traffic.acked)}, acknowledged before its end {len(before_end)}, "
            f"present in the restore {present}, lost {lost}")
        assert traffic.failed == 0, traffic.failures
        assert before_end and lost == 0

    def test_with_the_repository_down_the_site_writes_and_the_archive_has_no_gap_after(self, lab, topology, say):
        checks.wait_first_backup(lab, topology)
        checks.check_archiving(lab, topology)
        leader = checks.leader(lab, topology)
        first = checks.sql_on(lab, leader, "SELECT pg_walfile_name(pg_current_wal_lsn())", "postgres")
        address = lab.address(checks.hosts_with(topology, "loadbalancer")[0])
        repo = checks.backup_host(topology)
        lab.kill(repo)
        try:
            with checks.Traffic(address, reads=False) as traffic:
                for _ in range(4):
                    time.sleep(3)
                    checks.sql_on(lab, leader, "SELECT pg_switch_wal()", "postgres")
            failed_archiving = checks.sql_on(lab, leader, "SELECT failed_count FROM pg_stat_archiver", "postgres")
        finally:
            lab.start(repo)
        last = checks.sql_on(lab, leader, "SELECT pg_walfile_name(pg_current_wal_lsn())", "postgres")
        checks.check_archiving(lab, topology)
        segments = lab.exec(repo, f"find {PGBACKREST['repo_path']}/archive/{STANZA} -type f -name '{first[:8]}*' "
                                  "-printf '%f\\n'", check=True).stdout.split()
        numbers = sorted({int(s[8:16], 16) * 256 + int(s[16:24], 16) for s in segments})
        want = range(int(first[8:16], 16) * 256 + int(first[16:24], 16),
                     int(last[8:16], 16) * 256 + int(last[16:24], 16) + 1)
        missing = sorted(set(want) - set(numbers))
        verify = lab.exec(repo, f"runuser -u postgres -- pgbackrest --stanza={STANZA} verify", timeout=600)
        say(f"repository down: site writes sent {traffic.sent}, failed {traffic.failed}, acknowledged "
            f"{len(traffic.acked)}; archive attempts failed meanwhile {failed_archiving}; segments "
            f"{first}..{last} in the repository after: {len(want) - len(missing)} of {len(want)}, missing "
            f"{len(missing)}; pgbackrest verify exit {verify.returncode}")
        assert traffic.failed == 0, traffic.failures
        assert not missing, missing
        assert verify.returncode == 0, verify.stdout + verify.stderr

    def test_uploads_are_snapshotted_and_a_restore_brings_back_a_lost_one(self, lab, topology, say):
        repo = checks.backup_host(topology)
        address = lab.address(checks.hosts_with(topology, "loadbalancer")[0])
        stem = f"keep-{uuid.uuid4().hex[:8]}"
        content = f"{stem}\n".encode()
        assert checks.Uploader(address).upload(f"{stem}.txt", content).status == 302
        [name] = checks.uploads_named(lab, topology, stem)
        lab.exec(repo, "systemctl start media-backup@daily.service", check=True, timeout=600)
        status = lab.exec(repo, MEDIA_BACKUP["status_command"], check=True).stdout
        # Lost from every media host's disk: the site answers 404.
        media = checks.hosts_with(topology, "media")
        for host in media:
            lab.exec(host, f"rm {checks.MEDIA_ROOT}/demo/media/{name}", check=True)
        lost = checks.request(address, f"/media/{name}").status
        restore = lab.exec(repo, MEDIA_BACKUP["restore_command"], check=True).stdout.strip()
        got = checks.request(address, f"/media/{name}")
        say(f"upload {name}: snapshot taken ({status.strip()}); deleted from {media}: HTTP {lost}; "
            f"restore: {restore}; after it: HTTP {got.status}")
        assert lost == 404
        assert (got.status, got.body) == (200, content)
        assert all(checks.media_file(lab, host, name) == content for host in media)

    def test_the_status_view_shows_backups_archiving_and_snapshots(self, lab, topology, say):
        """After the tests above: a full and a differential backup, WAL
        archived by the leader, a snapshot of the uploads."""
        view = lab.salt_run("state.orchestrate", "orchestrate.database", f"saltenv={STACK_ENV}",
                            f"pillarenv={STACK_ENV}")
        text = json.dumps(view).replace("\\n", "\n")
        lines = [line.strip() for line in text.splitlines()
                 if re.search(r"full backup|diff backup|wal archive min/max|WAL archive \(|media backups|daily\.0", line)]
        say("status view, backup lines:\n  " + "\n  ".join(lines))
        for wanted in (r"full backup: \d{8}-\d{6}F", r"diff backup: \d{8}-\d{6}F_\d{8}-\d{6}D",
                       r"wal archive min/max", r"WAL archive \(this host leads\): last segment [0-9A-F]{24}, "
                       r"archived \d+ s ago", r"daily\.0 \d{4}-\d\d-\d\d"):
            assert any(re.search(wanted, line) for line in lines), (wanted, lines)
