"""prefbias.data"""
