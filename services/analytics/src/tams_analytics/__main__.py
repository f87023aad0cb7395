from tams_analytics.app import entrypoint

entrypoint()
