"""Command line: ./lab VERB ... (see ``./lab --help``)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from . import bench, docker, images, vmbox, vmhost
from .config import DEFAULT_RELEASE, RELEASES, Settings, check_release
from .lab import Lab, down_layout, format_status, layout_status
from .saltctl import STACK_ENV
from .util import LabError, Progress

DEFAULT_LAYOUT = "three-tier"

EPILOG = """\
examples:
  ./lab up                      bring up the default layout (three-tier) on trixie
  ./lab up trio --release bookworm   a layout on Debian 12
  ./lab up single --deploy      bring up a layout and run the full deploy
  ./lab apply                   salt-run state.orchestrate orchestrate.deploy saltenv=stack pillarenv=stack
  ./lab highstate               salt '*' state.apply (the outsider minion included)
  ./lab salt '*' test.ping      the salt CLI on the master
  ./lab exec app1 systemctl status uwsgi-emperor
  ./lab bench --only static django   benchmark rows of the deployed lab (README: Benchmarks)
  ./lab plan                    salt-run stack.plan: who runs what and talks to whom, what would change
  ./lab status --stack          the lab's containers, then salt-run stack.status (every tier's health)
  ./lab status; ./lab down
  ./lab vagrant-image           the docker provider's image for the Vagrantfile (LAYOUT=... vagrant up)
  ./lab vm-setup                this machine ready for real VMs (libvirt); prints the environment for
                                LAYOUT=single vagrant up --provider=libvirt
  ./lab test [fast|lab|slow|vm] [PYTEST ARGS]   the test suites (handled by the ./lab wrapper)

environment: STACKLAB_CACHE (default ~/.cache/stacklab), STACKLAB_IMAGE_PREFIX
(default stacklab), STACKLAB_HTTP_PORT (first published port, default 8080),
STACKLAB_RELEASE (default release, trixie), STACKLAB_CA_BUNDLE (CA bundle for
pip in build containers, default this machine's)
"""


def _current(args, progress: Progress) -> Lab:
    """The lab a verb acts on: --layout, else the one that is up."""
    if args.layout:
        name = args.layout
    else:
        up = Lab.layouts_up()
        if not up:
            raise LabError("no lab is up: run ./lab up [LAYOUT] first")
        if len(up) > 1:
            raise LabError(f"several labs are up ({', '.join(sorted(up))}): pass --layout")
        name = next(iter(up))
    # The topology file and release the running lab was started with (its
    # network's labels): a lab from a file outside the layout dirs, or on a
    # release other than the default, is still found.
    running = Lab.running(Path(name).stem if "/" in name or name.endswith(".sls") else name)
    path = running.get("topology")
    layout = path if path and os.path.isfile(path) else name
    return Lab(layout, release=running.get("release") or None, progress=progress)


def _stack_runner(lab: Lab, fun: str, *args: str) -> int:
    """One of the stack's runners (salt/_runners/stack.py) on the lab's
    master, as an operator runs it on a real one."""
    return subprocess.call(["docker", "exec", lab.container("master"), "salt-run", fun,
                            f"saltenv={STACK_ENV}", f"pillarenv={STACK_ENV}", *args])


def _interactive_flags() -> list[str]:
    flags = ["-i"] if not sys.stdin.closed and sys.stdin.isatty() else []
    if flags and sys.stdout.isatty():
        flags.append("-t")
    return flags


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lab", description="Multi-host lab for the Salt stack: one "
                                 "systemd container per topology host, a salt-master, an apt cache.",
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-l", "--layout", help="layout name or topology file (default: the lab that is up)")
    sub = ap.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = sub.add_parser("up", help="bring a layout's lab up (default three-tier)")
    p.add_argument("layout_arg", nargs="?", metavar="LAYOUT",
                   help="name in pillar/examples/layouts or tests/lab/topologies, or a topology file")
    p.add_argument("--replace", action="store_true", help="tear down another layout's lab first")
    p.add_argument("--fresh", action="store_true", help="recreate the hosts even if this lab is up")
    p.add_argument("--deploy", action="store_true", help="run the full deploy (apply) once up")
    p.add_argument("--release", choices=RELEASES, default=None,
                   help=f"Debian release of every container (default {DEFAULT_RELEASE}, or $STACKLAB_RELEASE)")

    p = sub.add_parser("down", help="remove the lab's containers, network and volumes")
    p.add_argument("layout_arg", nargs="?", metavar="LAYOUT", help="only this layout (default: every lab)")

    p = sub.add_parser("status", help="containers, addresses, roles, systemd state, site URL")
    p.add_argument("layout_arg", nargs="?", metavar="LAYOUT")
    p.add_argument("--stack", action="store_true", help="then every tier's health: salt-run stack.status")

    p = sub.add_parser("plan", help="salt-run stack.plan on the master: hosts, roles, services, peers and "
                       "ports, then what a state.apply test=True would change per host")
    p.add_argument("--no-test", action="store_true", help="the table from pillar only (test=False)")

    p = sub.add_parser("apply", help="the full ordered deploy: salt-run state.orchestrate "
                       f"orchestrate.deploy saltenv={STACK_ENV} pillarenv={STACK_ENV}")
    p.add_argument("--sls", default="orchestrate.deploy", help="orchestrate SLS (default orchestrate.deploy)")

    sub.add_parser("highstate", help="salt '*' state.apply, with changed/failed counts per host")

    p = sub.add_parser("salt", help="the salt CLI on the master, e.g. ./lab salt '*' test.ping")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("salt-run", help="the salt-run CLI on the master")
    p.add_argument("args", nargs=argparse.REMAINDER)

    p = sub.add_parser("exec", help="run a command on a host (HOST: minion id, salt, aptproxy, "
                       "outsider); no CMD: a shell")
    p.add_argument("host")
    p.add_argument("cmd", nargs=argparse.REMAINDER)

    p = sub.add_parser("bench", help="benchmark the deployed lab: stack vs reference, interleaved rounds; "
                       "a table, results.md/.json and a PNG in --out")
    p.add_argument("layout_arg", nargs="?", metavar="LAYOUT", help="a layout, or current (default: the lab that is up)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per side, interleaved; medians (default 3)")
    p.add_argument("--seconds", type=int, default=10, help="seconds per wrk round (default 10)")
    p.add_argument("--sustain", type=int, default=60, help="seconds of the sustained rows and pgbench (default 60)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--out", type=Path, help="results directory (default .lab/bench/<layout>-<timestamp>/)")
    p.add_argument("--only", nargs="+", choices=bench.GROUPS, metavar="ROW",
                   help=f"row groups to run, of: {', '.join(bench.GROUPS)} (default: all)")
    p.add_argument("--first-deploy", action="store_true", help="the lab was just brought up without a deploy: "
                   "time the first ordered deploy (the convergence row's reference), then bench")

    for verb, what in (("images", "the images (rootfs, build, base, apt cache) and wheelhouses"),
                       ("wheelhouse", "the app wheelhouse")):
        p = sub.add_parser(verb, help=f"build (or reuse) {what} of every release (or --release)")
        p.add_argument("--release", choices=[*RELEASES, "all"], default="all",
                       help=f"one release ({', '.join(RELEASES)}); default: all")

    p = sub.add_parser("vagrant-site", help="for the Vagrantfile: write a layout's site pillar root, "
                       "keys and master bundle under --state-dir; print them as JSON")
    p.add_argument("layout_arg", nargs="?", metavar="LAYOUT", help=f"default {DEFAULT_LAYOUT}")
    p.add_argument("--state-dir", type=Path, default=Path(".vagrant") / "django-stack",
                   help="where (default .vagrant/django-stack; the Vagrantfile passes its dotfile dir's)")
    p.add_argument("--image", action="store_true",
                   help="also build (or reuse) the docker provider's image and the app wheelhouse")
    p.add_argument("--admin-network", action="append", default=[], metavar="CIDR",
                   help="also let ssh in from CIDR (added to topology:admin_networks, if the layout has them): "
                   "where Vagrant's ssh comes from")
    p = sub.add_parser("vagrant-image", help="build (or reuse) the image of the Vagrantfile's docker "
                       "provider: the base image with a vagrant user (passwordless sudo, Vagrant's key)")
    p.add_argument("--release", choices=RELEASES, default=None)
    p = sub.add_parser("vm-setup", help="prepare this machine for `vagrant up --provider=libvirt`: "
                       "libvirt, the box, the app wheelhouse, an apt cache for the guests; prints the environment")
    p.add_argument("--release", choices=RELEASES, default=None, help=f"default {DEFAULT_RELEASE}")
    p = sub.add_parser("vm-box", help="build (or reuse) the Vagrant box for real VMs (libvirt) and add it "
                       "to Vagrant as stacklab/RELEASE")
    p.add_argument("--release", choices=RELEASES, default=None, help=f"default {DEFAULT_RELEASE}")
    p.add_argument("--no-add", action="store_true", help="build the .box file only, no `vagrant box add`")

    args = ap.parse_args(argv)
    progress = Progress()
    try:
        return _run(args, progress)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _run(args, progress: Progress) -> int:
    verb = args.verb
    if verb == "up":
        lab = Lab(args.layout_arg or args.layout or DEFAULT_LAYOUT, release=args.release, progress=progress)
        took = lab.up(replace=args.replace, fresh=args.fresh)
        print(f"up: {took:.1f}s", file=sys.stderr)
        if args.deploy:
            res = lab.run_orchestrate(check=False)
            if lab.url:
                print(f"site: {lab.url}", file=sys.stderr)
            return 0 if res.ok else 1
        return 0
    if verb == "down":
        docker.available()
        down_layout(args.layout_arg or args.layout, progress)
        return 0
    if verb == "status":
        docker.available()
        print(format_status(layout_status(args.layout_arg or args.layout)), flush=True)
        if args.stack:
            args.layout = args.layout_arg or args.layout
            return _stack_runner(_current(args, progress), "stack.status")
        return 0
    if verb in ("images", "wheelhouse"):
        s = Settings.from_env()
        releases = RELEASES if args.release == "all" else [check_release(args.release)]
        for release in releases:
            imgs = images.ensure_images(s, release, progress)
            if verb == "images":
                print(f"{imgs.base}\n{imgs.aptproxy}\n{imgs.build}")
            images.app_wheelhouse(s, release, progress, imgs)
        return 0
    if verb == "vagrant-site":
        from . import vagrant
        config = vagrant.prepare(args.layout_arg or args.layout or DEFAULT_LAYOUT, args.state_dir.resolve(),
                                 progress=progress, build_image=args.image,
                                 admin_networks=args.admin_network)
        print(json.dumps(config, indent=2))
        return 0
    if verb == "vagrant-image":
        from . import vagrant
        print(vagrant.ensure_image(Settings.from_env(), check_release(args.release), progress))
        return 0

    if verb == "vm-setup":
        s, release = Settings.from_env(), check_release(args.release)
        vmhost.setup(s, release, progress)
        box = vmbox.ensure_box(s, release, progress)
        images.app_wheelhouse(s, release, progress)
        print(f"export VAGRANT_DEFAULT_PROVIDER=libvirt VAGRANT_BOX={box.name} "
              f"STACKLAB_APT_PROXY={vmhost.apt_proxy_url()}")
        return 0
    if verb == "vm-box":
        box = vmbox.ensure_box(Settings.from_env(), args.release, progress, add=not args.no_add)
        print(f"{box.name}\t{box.path}")
        return 0

    if verb == "bench" and args.layout_arg not in (None, "current"):
        args.layout = args.layout_arg
    lab = _current(args, progress)
    if verb == "bench":
        return bench.main(lab, bench.Options(
            rounds=args.rounds, seconds=args.seconds, sustain=args.sustain, connections=args.connections,
            threads=args.threads, out=args.out, only=tuple(args.only or bench.GROUPS),
            first_deploy=args.first_deploy))
    if verb == "apply":
        res = lab.run_orchestrate(args.sls, check=False)
        if lab.url:
            print(f"site: {lab.url}", file=sys.stderr)
        return 0 if res.ok else 1
    if verb == "plan":
        return _stack_runner(lab, "stack.plan", *(["test=False"] if args.no_test else []))
    if verb == "highstate":
        lab.highstate()
        return 0
    if verb in ("salt", "salt-run"):
        cmd = ["docker", "exec", *_interactive_flags(), lab.container("master"), verb, *args.args]
        return subprocess.call(cmd)
    if verb == "exec":
        container = lab.container(args.host)
        cmd = args.cmd or ["bash", "-l"]
        if len(cmd) == 1 and " " in cmd[0]:
            cmd = ["sh", "-c", cmd[0]]
        return subprocess.call(["docker", "exec", *_interactive_flags(), container, *cmd])
    raise LabError(f"unknown verb {verb}")
