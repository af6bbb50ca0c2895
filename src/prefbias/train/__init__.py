"""prefbias.train"""
