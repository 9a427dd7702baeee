"""dse: conversion-aware training of TTFS log-weight SNNs and design-space exploration around them."""

__version__ = "0.1.0"
