"""latentomni.analysis"""
