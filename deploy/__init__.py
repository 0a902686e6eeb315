"""Deployment tooling for a class: not part of the `sae_core` library and not installed with it.

`class_nginx` writes the nginx configuration that puts several app servers behind one address;
`scripts/class_servers.py` starts the servers and that nginx; `nginx-class.conf` is its output for three
servers, for a machine whose own nginx does the proxying.
"""
