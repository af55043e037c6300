"""latentomni.train"""
