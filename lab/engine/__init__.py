"""The pure event-sourcing core of the lab: no Django, no I/O. See decider.py for the rules."""
