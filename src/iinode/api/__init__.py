"""HTTP front ends of a node."""
