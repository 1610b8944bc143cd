"""Networking: regional gateways in each cluster and global routing across them."""
