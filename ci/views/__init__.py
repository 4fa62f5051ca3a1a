"""Web blueprints: the only modules that use Flask's request and app globals."""
