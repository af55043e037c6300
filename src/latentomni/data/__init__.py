"""latentomni.data"""
