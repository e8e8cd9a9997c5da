"""What migctl hands to the systems around it: systemd, Slurm, Kubernetes, mig-parted's checkpoints.

Every module here is pure: typed facts in, typed records or text out, no I/O and no processes.
The operations that read the node and write files are in :mod:`migctl.ops` (``boot``,
``integrations``, ``parity``); the commands are in :mod:`migctl.cli`.
"""
