"""The built-in hub: components shipped as YAML files in this folder, and the small programs they run."""
