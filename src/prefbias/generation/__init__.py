"""prefbias.generation"""
