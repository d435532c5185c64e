% Multi-digit MNIST addition: two numbers of N digits each, written as lists of images
% (most significant digit first); N is set by the task (query.inputs).
nn(mnist_net, [X], Y, [0,1,2,3,4,5,6,7,8,9]) :: digit(X, Y).

% number(Images, Value): the images read as a decimal number.
number([], Result, Result).
number([H|T], Acc, Result) :- digit(H, Nr), Acc2 is Nr + 10 * Acc, number(T, Acc2, Result).
number(X, Y) :- number(X, 0, Y).

% addition(X, Y, Z): the numbers shown by the image lists X and Y sum to Z.
addition(X, Y, Z) :- number(X, X2), number(Y, Y2), Z is X2 + Y2.
