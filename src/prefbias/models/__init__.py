"""prefbias.models"""
