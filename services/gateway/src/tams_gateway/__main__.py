from tams_gateway.app import entrypoint

entrypoint()
