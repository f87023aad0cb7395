"""HTTP routes of the gateway, one module per TAMS resource family."""
