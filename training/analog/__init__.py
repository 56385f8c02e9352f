"""Training with weights in pulsed analog arrays: digital SGD, analog SGD, Tiki-Taka, chopped TTv2."""
