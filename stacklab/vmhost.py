"""What real VMs (vagrant-libvirt) need on this machine, made ready on demand
(``./lab vm-setup``, the VM test), never by the default bootstrap: CI does
not pay for it.

- Debian's vagrant, vagrant-libvirt, libvirt and qemu (``--no-install-recommends``);
- libvirt's daemons, started by hand (no systemd as PID 1 here), and its
  ``default`` storage pool, where vagrant-libvirt uploads boxes; qemu runs
  as root (``QEMU_CONF``): the lab's box boots a kernel that lies in the
  box's folder under ~/.vagrant.d, which libvirt's own qemu user cannot
  reach;
- Vagrant's management network (``vagrant-libvirt``, NAT, DHCP), defined
  here before any ``vagrant up`` so that its host address exists early;
- an apt cache for the guests on that address: the lab's apt-cacher-ng
  image, publishing port 3142 there (guests reach no mirror themselves: the
  cache fetches for them). Its cache directory is its own (two
  apt-cacher-ng must not write one directory while a container lab runs),
  seeded once with a copy of the container labs' cache.

The guests learn the cache's address from ``STACKLAB_APT_PROXY`` (see the
Vagrantfile's libvirt block); ssh from Vagrant arrives from the host's
address on the management network (``MANAGEMENT_HOST``), which a site's
``admin_networks`` must list or the firewall shuts Vagrant out after the
first deploy.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
from pathlib import Path

from . import docker, images
from .config import Settings
from .util import LabError, Progress, wait_until

HOST_PACKAGES = ["vagrant", "vagrant-libvirt", "libvirt-daemon-system", "qemu-system-x86", "qemu-utils",
                 "dnsmasq-base"]
# Started in this order: libvirtd logs through virtlogd and locks through virtlockd.
DAEMONS = ("virtlogd", "virtlockd", "libvirtd")
LIBVIRT_URI = "qemu:///system"
QEMU_CONF = Path("/etc/libvirt/qemu.conf")
QEMU_AS_ROOT = """
# Added by stacklab (stacklab/vmhost.py): qemu reads the box's kernel from
# the box's folder under the home of the user running Vagrant.
user = "root"
group = "root"
"""
LIBVIRTD_PIDFILE = Path("/run/libvirtd.pid")
POOL = "default"
POOL_DIR = "/var/lib/libvirt/images"
# vagrant-libvirt's own default management network, so a plain `vagrant up`
# (outside the lab tool) finds the same one.
MANAGEMENT_NETWORK_NAME = "vagrant-libvirt"
MANAGEMENT_NETWORK = ipaddress.IPv4Network("192.168.121.0/24")
MANAGEMENT_HOST = str(next(MANAGEMENT_NETWORK.hosts()))
APT_PROXY_CONTAINER = "stacklab-vm-aptproxy"
APT_PROXY_PORT = 3142
VM_LABEL = "stacklab.vm=true"


def vm_apt_cache(settings: Settings):
    return settings.cache_dir / "apt-cacher-ng-vm"


def apt_proxy_url() -> str:
    return f"http://{MANAGEMENT_HOST}:{APT_PROXY_PORT}"


def management_network_xml() -> str:
    first, last = list(MANAGEMENT_NETWORK.hosts())[1], list(MANAGEMENT_NETWORK.hosts())[-1]
    return f"""<network>
  <name>{MANAGEMENT_NETWORK_NAME}</name>
  <forward mode='nat'/>
  <ip address='{MANAGEMENT_HOST}' netmask='{MANAGEMENT_NETWORK.netmask}'>
    <dhcp><range start='{first}' end='{last}'/></dhcp>
  </ip>
</network>
"""


def virsh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    r = subprocess.run(["virsh", "-c", LIBVIRT_URI, *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise LabError(f"virsh {' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return r


def missing_packages() -> list[str]:
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *HOST_PACKAGES],
                       capture_output=True, text=True, timeout=60)
    installed = {line.split()[0] for line in r.stdout.splitlines() if line.endswith(" installed")}
    return [p for p in HOST_PACKAGES if p not in installed]


def _install_packages(progress: Progress) -> None:
    missing = missing_packages()
    if not missing:
        return
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    with progress.step(f"apt-get install --no-install-recommends {' '.join(missing)}"):
        for cmd in (["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]):
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
            if r.returncode != 0:
                raise LabError(f"{' '.join(cmd)} failed: {r.stderr.strip()[-2000:]}")


def _running(daemon: str) -> bool:
    return subprocess.run(["pgrep", "-x", daemon], capture_output=True, timeout=30).returncode == 0


def _qemu_as_root() -> bool:
    """Set qemu's user to root unless qemu.conf names one; True if changed."""
    text = QEMU_CONF.read_text()
    if any(line.split("=")[0].strip() in ("user", "group") for line in text.splitlines()
           if not line.lstrip().startswith("#") and "=" in line):
        return False
    QEMU_CONF.write_text(text + QEMU_AS_ROOT)
    return True


def _stop_libvirtd(progress: Progress) -> None:
    """Stop the libvirtd this lab started (its pid file), so it rereads qemu.conf."""
    pid = int(LIBVIRTD_PIDFILE.read_text().strip())
    progress(f"restarting libvirtd (pid {pid}) for qemu.conf")
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: (not _running("libvirtd"), "stopping"), timeout=60, what="libvirtd stop")


def _start_daemons(progress: Progress) -> None:
    if _qemu_as_root() and _running("libvirtd"):
        _stop_libvirtd(progress)
    for daemon in DAEMONS:
        if not _running(daemon):
            progress(f"starting {daemon} (no systemd here)")
            subprocess.run([f"/usr/sbin/{daemon}", "-d"], check=True, timeout=60)

    def answers():
        r = virsh("version", check=False, timeout=20)
        return r.returncode == 0, r.stderr.strip()
    wait_until(answers, timeout=60, what="libvirtd", progress=progress)


def _ensure_pool() -> None:
    if virsh("pool-info", POOL, check=False).returncode != 0:
        virsh("pool-define-as", POOL, "dir", "--target", POOL_DIR)
        virsh("pool-build", POOL, check=False)
    if "running" not in virsh("pool-info", POOL).stdout:
        virsh("pool-start", POOL)
    virsh("pool-autostart", POOL, check=False)


def _ensure_management_network() -> None:
    if virsh("net-info", MANAGEMENT_NETWORK_NAME, check=False).returncode != 0:
        path = "/run/stacklab-vagrant-libvirt-net.xml"
        with open(path, "w") as fh:
            fh.write(management_network_xml())
        virsh("net-define", path)
    info = virsh("net-info", MANAGEMENT_NETWORK_NAME).stdout
    if not any(line.split() == ["Active:", "yes"] for line in info.splitlines()):
        virsh("net-start", MANAGEMENT_NETWORK_NAME)
    dumped = virsh("net-dumpxml", MANAGEMENT_NETWORK_NAME).stdout
    if f"address='{MANAGEMENT_HOST}'" not in dumped:
        raise LabError(f"libvirt network {MANAGEMENT_NETWORK_NAME} exists with another address than "
                       f"{MANAGEMENT_NETWORK}: remove it (virsh net-destroy/net-undefine) or align it")


def _ensure_apt_proxy(settings: Settings, release: str, progress: Progress) -> None:
    running = docker.out("ps", "--filter", f"name=^{APT_PROXY_CONTAINER}$", "--format", "{{.Names}}",
                         check=False)
    if running.strip() == APT_PROXY_CONTAINER:
        return
    docker.docker("rm", "-f", APT_PROXY_CONTAINER, check=False, timeout=60)
    imgs = images.ensure_images(settings, release, progress)
    cache = vm_apt_cache(settings)
    if not cache.is_dir():
        if settings.apt_cache.is_dir():
            subprocess.run(["cp", "-a", str(settings.apt_cache), str(cache)], check=True, timeout=900)
        cache.mkdir(parents=True, exist_ok=True)
    with progress.step(f"apt cache for the VMs on {apt_proxy_url()} ({imgs.aptproxy})"):
        docker.docker("run", "-d", "--name", APT_PROXY_CONTAINER, "--label", VM_LABEL, "--restart", "no",
                      "-p", f"{MANAGEMENT_HOST}:{APT_PROXY_PORT}:{APT_PROXY_PORT}",
                      "-v", f"{cache}:/var/cache/apt-cacher-ng", imgs.aptproxy, timeout=120)


def setup(settings: Settings, release: str, progress: Progress) -> None:
    """Everything above, idempotent: a second call only checks."""
    with progress.step("VM host: packages, libvirt daemons, pool, management network, apt cache"):
        _install_packages(progress)
        _start_daemons(progress)
        _ensure_pool()
        _ensure_management_network()
        _ensure_apt_proxy(settings, release, progress)


def remove_apt_proxy() -> None:
    docker.docker("rm", "-f", APT_PROXY_CONTAINER, check=False, timeout=60)


def leftover_domains(prefix: str) -> list[str]:
    """libvirt domains whose name starts with ``prefix`` (vagrant-libvirt
    names them <project dir>_<machine>)."""
    r = virsh("list", "--all", "--name", check=False)
    return [n for n in r.stdout.split() if n.startswith(prefix)]

