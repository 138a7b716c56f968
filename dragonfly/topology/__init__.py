"""Topologies: many instruments, several aggregators and services on shared venue connections."""
