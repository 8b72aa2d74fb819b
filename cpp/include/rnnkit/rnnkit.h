#pragma once
// rnnkit's public C++ API: recurrent stacks (RNN, LSTM, GRU) forward and
// backward through time over flat parameter buffers.

#include "config.h"
#include "packing.h"
#include "spec.h"
#include "stack.h"
