from tams_catalog.app import entrypoint

entrypoint()
