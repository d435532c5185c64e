% MNIST-Half (rsbench, BEARS): single-digit addition over the digits 0-4 only.
nn(mnist_net, [X], Y, [0, 1, 2, 3, 4]) :: digit(X, Y).

addition(X, Y, Z) :- digit(X, X2), digit(Y, Y2), Z is X2 + Y2.
