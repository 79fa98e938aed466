"""Models: Lab colour space, guidance (SG/DSG), semantic and audio encoders, relevance net, backbones."""
