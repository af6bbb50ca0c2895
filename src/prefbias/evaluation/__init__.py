"""prefbias.evaluation"""
