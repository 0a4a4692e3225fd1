"""What every stage shares: atomic file writes (:mod:`.io`) and device and thread choice (:mod:`.device`)."""
