% Single-digit MNIST addition (DeepProbLog, Manhaeve et al. 2018).
% digit(X, Y): the network mnist_net reads image X as digit Y, one of 0..9.
nn(mnist_net, [X], Y, [0,1,2,3,4,5,6,7,8,9]) :: digit(X, Y).

% addition(X, Y, Z): images X and Y show digits that sum to Z.
addition(X, Y, Z) :- digit(X, X2), digit(Y, Y2), Z is X2 + Y2.
