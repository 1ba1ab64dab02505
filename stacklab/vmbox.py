"""A Vagrant box of a lab release for real VMs (vagrant-libvirt), built
locally and reused while its recipe holds.

No box registry is reachable, so the box is made the way the lab makes its
images: debootstrap a rootfs (a kernel, systemd, sshd, python3, sudo, rsync
for Vagrant's synced folders), Salt in /opt/salt from the release's Salt
wheelhouse (stacklab/images.py, built with that release's Python) with the
lab's own salt-minion/salt-master units, then:

- ``box.img``: ``mkfs.ext4 -d ROOTFS`` (a bare filesystem, no partition
  table, no bootloader) converted to qcow2;
- ``vmlinuz``, ``initrd.img``: the box's kernel, booted directly by libvirt
  (the box's own Vagrantfile points libvirt at them, in the box's folder);
- ``metadata.json``: provider libvirt, format qcow2, plus the recipe hash
  (``stacklab_recipe``) so an installed box is known to be current.

The box is cached as ``<cache>/vm-box/<release>-<hash>/stacklab.box`` and
added to Vagrant as ``stacklab/<release>``; a changed recipe builds a new
one and replaces the installed box (and its stale copy in libvirt's pool).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from . import images
from .config import SALT_VERSION, Settings, check_release
from .util import LabError, Progress, file_lock, run_logged, sha256_text

BOX_INCLUDE = [
    "linux-image-amd64", "initramfs-tools", "systemd", "systemd-sysv", "udev", "dbus", "openssh-server",
    "sudo", "rsync", "python3", "python3-venv", "iproute2", "procps", "ca-certificates", "curl", "less",
    "e2fsprogs",
    # DNS from the DHCP lease (libvirt's dnsmasq): debootstrap leaves the
    # build machine's resolv.conf, unreachable from a VM.
    "systemd-resolved",
]
DISK_GB = 10
# The disk is a bare ext4 filesystem (no partitions); classic interface
# names (eth0 = Vagrant's management network, eth1... = private networks).
KERNEL_CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0"
VAGRANT_USER = "vagrant"
# Vagrant's insecure public key, as Debian's vagrant package ships it;
# Vagrant swaps it for a key of each machine's own at the first `up`.
VAGRANT_KEY_GLOB = "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub"
RECIPE_UNITS = ("salt-master.service", "salt-minion.service", "ssh-host-keys.service")
SALT_TOOLS = ("salt", "salt-call", "salt-cp", "salt-key", "salt-master", "salt-minion", "salt-run")

# Salt under software emulation (qemu TCG) runs tens of times slower than on
# hardware: a request that takes a second natively can take minutes, and
# Salt's defaults (60 s per request, 30 s for a minion to confirm a running
# job) give up on work that would have finished.
SALT_SLOW_VM = """\
# Written into the VM box by stacklab (stacklab/vmbox.py): patience for
# software-emulated VMs; upper bounds only, so harmless on fast ones.
request_channel_timeout: 600
# A minion's sign-in and job returns: one try per minute, not per 5-15 s
# (each retry is more work for a master that is already behind).
auth_timeout: 60
return_retry_timer: 30
return_retry_timer_max: 60
timeout: 120
gather_job_timeout: 300
# A publish (the master's to its minions, and each daemon's event bus) that
# has not drained in 60 s drops its subscriber for good: the last run lost
# the deploy's first job that way under emulation.
publish_drain_timeout: 600
# The fqdns grain looks up every address in reverse DNS at each start.
enable_fqdns_grains: false
"""

# The box's own Vagrantfile: what any project using the box needs to boot it.
BOX_VAGRANTFILE = f"""\
# Written by stacklab (stacklab/vmbox.py): this box has no bootloader;
# libvirt boots its kernel directly, from the box's folder.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.kernel = File.join(__dir__, "vmlinuz")
    libvirt.initrd = File.join(__dir__, "initrd.img")
    libvirt.cmd_line = "{KERNEL_CMDLINE}"
  end
end
"""


@dataclass
class VmBox:
    name: str          # as `vagrant box add` knows it, e.g. stacklab/trixie
    path: Path         # the cached .box file
    recipe: str        # the recipe hash


def box_name(release: str) -> str:
    return f"stacklab/{release}"


def box_files(release: str) -> dict[str, str]:
    """Files written into the box's rootfs (path relative to / -> content)."""
    files = dict(images.rootfs_files(release))
    files.update({
        "etc/fstab": "/dev/vda / ext4 errors=remount-ro 0 1\n",
        "etc/hostname": "debian\n",
        "etc/hosts": "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
        # DHCP on the first interface (Vagrant's management network), unless
        # Vagrant configures it: its own files (50-vagrant-IFACE.network)
        # sort first, and the first match wins. Private networks wait for
        # Vagrant's static addresses: a lease from their DHCP range could
        # take another machine's address.
        "etc/systemd/network/99-stacklab-dhcp.network":
            "[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n",
        f"etc/sudoers.d/{VAGRANT_USER}": f"{VAGRANT_USER} ALL=(ALL) NOPASSWD:ALL\n",
        # Vagrant's ssh logins must not wait on reverse DNS.
        "etc/ssh/sshd_config.d/stacklab.conf": "UseDNS no\n",
        # Read after any other file there (the provisioners', the stack's).
        "etc/salt/minion.d/zz-stacklab-vm.conf": SALT_SLOW_VM,
        "etc/salt/master.d/zz-stacklab-vm.conf": SALT_SLOW_VM,
    })
    return files


def chroot_script(release: str) -> str:
    """What runs inside the rootfs (sh -e) once the files are in place;
    the wheelhouse is at /tmp/stacklab-wheels, the key at /tmp/vagrant.pub."""
    tools = " ".join(SALT_TOOLS)
    return f"""\
useradd --create-home --shell /bin/bash {VAGRANT_USER}
install -d -m 0700 -o {VAGRANT_USER} -g {VAGRANT_USER} /home/{VAGRANT_USER}/.ssh
install -m 0600 -o {VAGRANT_USER} -g {VAGRANT_USER} /tmp/vagrant.pub /home/{VAGRANT_USER}/.ssh/authorized_keys
chmod 0440 /etc/sudoers.d/{VAGRANT_USER}
# Host keys are made at first boot: every VM has its own.
rm -f /etc/ssh/ssh_host_*
systemctl enable ssh-host-keys.service systemd-networkd.service systemd-resolved.service
python3 -m venv /opt/salt
/opt/salt/bin/pip install --no-cache-dir --no-index --find-links /tmp/stacklab-wheels salt=={SALT_VERSION}
for t in {tools}; do ln -sf /opt/salt/bin/$t /usr/local/bin/$t; done
mkdir -p /etc/salt/master.d /etc/salt/minion.d
apt-get clean
rm -rf /var/lib/apt/lists/* /tmp/stacklab-wheels /tmp/vagrant.pub
# Names through resolved (the lease's DNS), not the build machine's resolver.
ln -sf ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
# systemd makes a fresh id at first boot (an empty file, not a missing one).
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
"""


def box_metadata(recipe: str) -> dict:
    return {"provider": "libvirt", "format": "qcow2", "virtual_size": DISK_GB, "stacklab_recipe": recipe}


def debootstrap_args(release: str) -> list[str]:
    return ["--variant=minbase", f"--include={','.join(BOX_INCLUDE)}", release]


def box_hash(release: str, salt_wheels: list[str]) -> str:
    """Everything the box is made of: a change here builds a new box."""
    files = sorted(box_files(release).items())
    units = [images._recipe(u) for u in RECIPE_UNITS]
    return sha256_text(
        "vmbox-v1", images.DEBOOTSTRAP_MIRROR, *debootstrap_args(release), *[x for kv in files for x in kv],
        chroot_script(release), BOX_VAGRANTFILE, str(DISK_GB), *units, SALT_VERSION, *salt_wheels,
    )[:12]


def vagrant_key() -> Path:
    import glob

    found = sorted(glob.glob(VAGRANT_KEY_GLOB))
    if not found:
        raise LabError(f"Vagrant's insecure public key not found ({VAGRANT_KEY_GLOB}): install Debian's vagrant")
    return Path(found[-1])


def vagrant_home() -> Path:
    return Path(os.environ.get("VAGRANT_HOME") or Path.home() / ".vagrant.d")


def installed_recipe(name: str) -> str | None:
    """The recipe hash of the installed box ``name`` (libvirt, version 0), or None."""
    meta = vagrant_home() / "boxes" / name.replace("/", "-VAGRANTSLASH-") / "0" / "libvirt" / "metadata.json"
    try:
        return json.loads(meta.read_text()).get("stacklab_recipe")
    except (OSError, ValueError):
        return None


# --- the build ------------------------------------------------------------------

def _build(settings: Settings, release: str, recipe: str, wheels: Path, dest: Path, progress: Progress) -> None:
    """Build the .box file of ``recipe`` at ``dest`` (as root: debootstrap, chroot, mkfs)."""
    work = settings.cache_dir / "build" / f"vm-box-{release}-{recipe}"
    rootfs = work / "rootfs"
    shutil.rmtree(work, ignore_errors=True)
    rootfs.mkdir(parents=True)
    logs = settings.cache_dir / "logs"
    debcache = settings.cache_dir / "debootstrap" / release
    debcache.mkdir(parents=True, exist_ok=True)
    try:
        with progress.step(f"debootstrap {release} (kernel, systemd, sshd) for the VM box"):
            run_logged(["debootstrap", f"--cache-dir={debcache}", *debootstrap_args(release), str(rootfs),
                        images.DEBOOTSTRAP_MIRROR],
                       log=logs / f"vm-box-debootstrap-{release}.log", title=f"debootstrap {release} (VM box)",
                       progress=progress, timeout=2400)
        for rel, content in box_files(release).items():
            path = rootfs / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        for unit in RECIPE_UNITS:
            shutil.copy2(images.RECIPE_DIR / unit, rootfs / "etc/systemd/system" / unit)
        shutil.copytree(wheels, rootfs / "tmp/stacklab-wheels", ignore=shutil.ignore_patterns(".complete"))
        shutil.copy2(vagrant_key(), rootfs / "tmp/vagrant.pub")
        with progress.step(f"vagrant user, Salt {SALT_VERSION} in /opt/salt (chroot)"):
            run_logged(["chroot", str(rootfs), "/bin/sh", "-ec", chroot_script(release)],
                       log=logs / f"vm-box-chroot-{release}.log", title="VM box setup (chroot)",
                       progress=progress, timeout=900, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                                            "LANG": "C.UTF-8", "HOME": "/root"})
        out = work / "box"
        out.mkdir()
        for name in ("vmlinuz", "initrd.img"):
            found = sorted((rootfs / "boot").glob(f"{name}-*"))
            if len(found) != 1:
                raise LabError(f"VM box: expected one {name}-* in {rootfs}/boot, found {len(found)}")
            shutil.copy2(found[0], out / name)
        with progress.step(f"box.img: mkfs.ext4 -d ({DISK_GB} GiB), qemu-img convert -O qcow2"):
            raw = work / "root.raw"
            run_logged(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(rootfs), str(raw), f"{DISK_GB}G"],
                       log=logs / f"vm-box-mkfs-{release}.log", title="mkfs.ext4 -d", progress=progress,
                       timeout=900)
            run_logged(["qemu-img", "convert", "-O", "qcow2", str(raw), str(out / "box.img")],
                       log=logs / f"vm-box-qemu-img-{release}.log", title="qemu-img convert", progress=progress,
                       timeout=900)
            raw.unlink()
        (out / "metadata.json").write_text(json.dumps(box_metadata(recipe), indent=2) + "\n")
        (out / "Vagrantfile").write_text(BOX_VAGRANTFILE)
        tmp = dest.with_name(dest.name + ".partial")
        with progress.step(f"packing {dest}"):
            with tarfile.open(tmp, "w") as tar:
                for name in ("metadata.json", "Vagrantfile", "vmlinuz", "initrd.img", "box.img"):
                    tar.add(out / name, arcname=name)
        tmp.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _libvirt_volumes(name: str) -> list[str]:
    """Volumes vagrant-libvirt made of box ``name`` in libvirt's default pool
    (it uploads a box once and keeps using that copy, even after the box is
    replaced)."""
    r = subprocess.run(["virsh", "-c", "qemu:///system", "vol-list", "default", "--details"],
                       capture_output=True, text=True, timeout=60)
    prefix = name.replace("/", "-VAGRANTSLASH-") + "_vagrant_box_image_"
    return [line.split()[0] for line in r.stdout.splitlines()
            if line.strip() and line.split()[0].startswith(prefix)]


def _vagrant(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["vagrant", *args], capture_output=True, text=True, timeout=timeout)


def install(box: VmBox, progress: Progress) -> None:
    """``vagrant box add`` the box unless that very recipe is installed."""
    if installed_recipe(box.name) == box.recipe:
        progress(f"vagrant box {box.name} is current ({box.recipe})")
        return
    with progress.step(f"vagrant box add {box.name} ({box.recipe})"):
        _vagrant("box", "remove", "--force", "--all", "--provider", "libvirt", box.name, timeout=300)
        for vol in _libvirt_volumes(box.name):
            subprocess.run(["virsh", "-c", "qemu:///system", "vol-delete", "--pool", "default", vol],
                           capture_output=True, timeout=120)
        r = _vagrant("box", "add", "--force", "--name", box.name, str(box.path), timeout=900)
        if r.returncode != 0:
            raise LabError(f"vagrant box add {box.path} failed: {r.stderr.strip() or r.stdout.strip()}")
    if installed_recipe(box.name) != box.recipe:
        raise LabError(f"vagrant box {box.name}: installed, but its metadata.json lacks recipe {box.recipe}")


def ensure_box(settings: Settings, release: str | None, progress: Progress, *, add: bool = True) -> VmBox:
    """The release's box, built if its recipe changed, and (``add``) installed in Vagrant."""
    release = check_release(release)
    if os.geteuid() != 0:
        raise LabError("building the VM box needs root (debootstrap, chroot)")
    for tool in ("debootstrap", "mkfs.ext4", "qemu-img"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} is missing: ./lab vm-setup installs what VMs need")
    imgs = images.ensure_images(settings, release, progress)
    wheels = images.salt_wheelhouse(settings, release, imgs.build, progress)
    recipe = box_hash(release, images._wheels(wheels))
    path = settings.cache_dir / "vm-box" / f"{release}-{recipe}" / "stacklab.box"
    with file_lock(settings.cache_dir / "locks" / f"vm-box-{release}.lock", "VM box build", progress, timeout=3600):
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            _build(settings, release, recipe, wheels, path, progress)
            for old in (settings.cache_dir / "vm-box").glob(f"{release}-*"):
                if old != path.parent:
                    shutil.rmtree(old, ignore_errors=True)
        box = VmBox(name=box_name(release), path=path, recipe=recipe)
        if add:
            install(box, progress)
    progress(f"VM box {box.name}: {path} ({path.stat().st_size / 2**20:.0f} MiB)")
    return box
