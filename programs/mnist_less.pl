% A true/false query over two MNIST digits: is the first digit smaller than the second?
% digit(X, Y): the network mnist_net reads image X as digit Y, one of 0..9.
nn(mnist_net, [X], Y, [0,1,2,3,4,5,6,7,8,9]) :: digit(X, Y).

% less(X, Y): the digit shown by X is smaller than the digit shown by Y (no output argument).
less(X, Y) :- digit(X, A), digit(Y, B), A < B.
