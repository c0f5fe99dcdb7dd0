"""The node: settings, authentication, the handle service and its rules, process life cycle."""
