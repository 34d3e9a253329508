//! RFC 4515 filters: conversion from the wire form and matching by syntax.
