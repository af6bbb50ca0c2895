"""prefbias.report"""
