% Single-digit MNIST addition whose labels are noisy: with probability 0.1 the recorded sum is one too high
% (modulo 19, so 18 becomes 0). The program states the noise, so labels sampled from it (data.labels:
% sampled) carry exactly this noise, and DeepProbLog's loss accounts for it.
nn(mnist_net, [X], Y, [0,1,2,3,4,5,6,7,8,9]) :: digit(X, Y).

0.1::flip.

addition(X, Y, Z) :- digit(X, A), digit(Y, B), \+ flip, Z is A + B.
addition(X, Y, Z) :- digit(X, A), digit(Y, B), flip, Z is (A + B + 1) mod 19.
