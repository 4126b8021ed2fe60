"""What a run records about its world: code state, environment, settings, artifact files."""
