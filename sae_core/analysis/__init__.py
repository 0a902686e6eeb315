"""What a trained model is good for and what it teaches: applications, theory numbers, a unit's card,
diagnostics."""
