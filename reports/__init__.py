"""Tables, continual-learning metrics and figures built from run directories."""
