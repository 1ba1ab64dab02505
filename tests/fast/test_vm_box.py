"""The real-VM pieces that need no VM: the box's recipe hash and metadata
(stacklab/vmbox.py), the host's management network (stacklab/vmhost.py)
as the Vagrantfile names it, and the extra admin network vagrant-site adds."""
import json
import re
from pathlib import Path

import yaml

from stacklab import vagrant, vmbox, vmhost

REPO = Path(__file__).resolve().parents[2]
WHEELS = ["salt-3008.3-py3-none-any.whl", "pyzmq-27.3.0-cp312-abi3-manylinux_2_28_x86_64.whl"]


def test_the_box_hash_follows_its_inputs():
    same = vmbox.box_hash("trixie", WHEELS)
    assert same == vmbox.box_hash("trixie", list(WHEELS))
    assert vmbox.box_hash("bookworm", WHEELS) != same
    assert vmbox.box_hash("trixie", WHEELS[:1]) != same


def test_metadata_is_a_libvirt_qcow2_box_that_knows_its_recipe():
    meta = vmbox.box_metadata("abc123")
    assert meta["provider"] == "libvirt" and meta["format"] == "qcow2"
    assert meta["virtual_size"] == vmbox.DISK_GB and meta["stacklab_recipe"] == "abc123"
    json.dumps(meta)


def test_the_box_boots_its_own_kernel_from_its_folder():
    text = vmbox.BOX_VAGRANTFILE
    for setting in ("libvirt.kernel", "libvirt.initrd", "libvirt.cmd_line"):
        assert setting in text
    assert 'File.join(__dir__, "vmlinuz")' in text and "root=/dev/vda" in text


def test_the_box_has_what_vagrant_and_salt_need():
    files = vmbox.box_files("trixie")
    assert files["etc/machine-id"] == ""
    assert "NOPASSWD" in files["etc/sudoers.d/vagrant"]
    # Only the management interface takes a lease, after Vagrant's own files.
    name = "etc/systemd/network/99-stacklab-dhcp.network"
    assert "Name=eth0" in files[name] and name.split("/")[-1] > "50-vagrant-eth1.network"
    script = vmbox.chroot_script("trixie")
    assert "--no-index" in script and "/opt/salt" in script and "rm -f /etc/ssh/ssh_host_*" in script
    assert {"linux-image-amd64", "openssh-server", "sudo", "rsync", "python3"} <= set(vmbox.BOX_INCLUDE)


def test_the_vagrantfile_and_the_lab_agree_on_the_management_network():
    text = (REPO / "Vagrantfile").read_text()
    declared = re.search(r'LIBVIRT_MANAGEMENT_NETWORK = "([^"]+)"', text).group(1)
    assert declared == str(vmhost.MANAGEMENT_NETWORK)
    assert f"address='{vmhost.MANAGEMENT_HOST}'" in vmhost.management_network_xml()


def test_vagrant_site_adds_an_admin_network_only_to_a_topology_that_has_some():
    single = (REPO / "pillar" / "examples" / "layouts" / "single.sls").read_text()
    topology = yaml.safe_load(vagrant.with_admin_networks(single, ["192.168.121.1/32"]))["topology"]
    assert topology["admin_networks"][-1] == "192.168.121.1/32"
    assert topology["hosts"] == yaml.safe_load(single)["topology"]["hosts"]
    assert vagrant.with_admin_networks(single, []) == single
    open_to_all = "topology:\n  network: 10.77.0.0/24\n  hosts: {}\n"
    assert vagrant.with_admin_networks(open_to_all, ["192.168.121.1/32"]) == open_to_all
