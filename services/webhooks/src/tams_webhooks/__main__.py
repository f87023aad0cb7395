from tams_webhooks.app import entrypoint

entrypoint()
