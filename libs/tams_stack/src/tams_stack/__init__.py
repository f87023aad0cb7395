"""The tams command: runs the local stack (tansu, SeaweedFS, the five services)."""
