"""Stand-ins for what cannot exist on a CPU test machine, each named as a fake."""
