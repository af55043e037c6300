"""latentomni.model"""
