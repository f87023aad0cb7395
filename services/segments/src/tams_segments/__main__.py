from tams_segments.app import entrypoint

entrypoint()
