"""Point-in-time features, encoders (fit on train only) and the encoded tensor format."""
