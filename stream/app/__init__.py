"""The `handstream run | demo | record` verbs."""
