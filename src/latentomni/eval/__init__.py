"""latentomni.eval"""
