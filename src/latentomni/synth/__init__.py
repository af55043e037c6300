"""latentomni.synth"""
